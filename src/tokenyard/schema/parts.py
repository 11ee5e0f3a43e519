"""Message content parts and tool shapes of OpenAI's chat API (unknown fields are tolerated everywhere).

Each part type is a msgspec Struct tagged by its ``type`` field, so an unknown part type is a clear error.
Beyond OpenAI's text/image_url/input_audio/file/refusal, vLLM's ``video_url`` and ``audio_url`` are accepted.
"""

from __future__ import annotations

from typing import Literal

import msgspec


class MediaURL(msgspec.Struct):
    url: str
    detail: str | None = None


class TextPart(msgspec.Struct, tag="text", tag_field="type"):
    text: str


class ImagePart(msgspec.Struct, tag="image_url", tag_field="type"):
    image_url: MediaURL


class InputAudio(msgspec.Struct):
    data: str
    format: str


class AudioPart(msgspec.Struct, tag="input_audio", tag_field="type"):
    input_audio: InputAudio


class FileRef(msgspec.Struct):
    file_data: str | None = None
    file_id: str | None = None
    filename: str | None = None


class FilePart(msgspec.Struct, tag="file", tag_field="type"):
    file: FileRef


class RefusalPart(msgspec.Struct, tag="refusal", tag_field="type"):
    refusal: str


class VideoURLPart(msgspec.Struct, tag="video_url", tag_field="type"):
    video_url: MediaURL


class AudioURLPart(msgspec.Struct, tag="audio_url", tag_field="type"):
    audio_url: MediaURL


PART_TYPES = ("text", "image_url", "input_audio", "file", "refusal", "video_url", "audio_url")
ContentPart = TextPart | ImagePart | AudioPart | FilePart | RefusalPart | VideoURLPart | AudioURLPart
Content = str | list[ContentPart]


class FunctionCall(msgspec.Struct):
    name: str
    arguments: str


class ToolCall(msgspec.Struct):
    id: str
    function: FunctionCall
    type: Literal["function"] = "function"


class FunctionDefinition(msgspec.Struct):
    name: str
    description: str | None = None
    # Kept as raw JSON (empty when absent): checked to be an object without building the schema's objects.
    parameters: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)
    strict: bool | None = None


class Tool(msgspec.Struct):
    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(msgspec.Struct):
    name: str


class ToolChoiceFunction(msgspec.Struct):
    type: Literal["function"]
    function: NamedFunction


class ResponseFormatText(msgspec.Struct, tag="text", tag_field="type"):
    pass


class ResponseFormatJSONObject(msgspec.Struct, tag="json_object", tag_field="type"):
    pass


class JSONSchemaSpec(msgspec.Struct):
    name: str
    description: str | None = None
    schema: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)
    strict: bool | None = None


class ResponseFormatJSONSchema(msgspec.Struct, tag="json_schema", tag_field="type"):
    json_schema: JSONSchemaSpec


RESPONSE_FORMATS = ("text", "json_object", "json_schema")
ResponseFormat = ResponseFormatText | ResponseFormatJSONObject | ResponseFormatJSONSchema


class StreamOptions(msgspec.Struct):
    include_usage: bool | None = None
