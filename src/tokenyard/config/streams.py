"""Config of the client path of streamed answers (``streams:``): heartbeats and the resume buffer.

Which classes may resume is per class (``classes.NAME.resume_window_ms``); this section holds what applies to
every stream. See docs/resume.md.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from tokenyard.config.base import PositiveInt, Section

NonNegativeSeconds = Annotated[float, msgspec.Meta(ge=0.0, le=3600.0)]


class StreamsConfig(Section, frozen=True, kw_only=True):
    """``heartbeat_s``: an SSE comment (``: keep-alive``) is sent after this many seconds without an event, so
    proxies, NATs and VPNs keep an idle stream open (0 turns heartbeats off). ``resume_buffer_events`` and
    ``resume_buffer_bytes`` bound the replay buffer of one resumable stream: the newest events within both
    limits are kept; a resume that needs an event already dropped gets a clear error (410), never a gap.
    """

    heartbeat_s: NonNegativeSeconds = 15.0
    resume_buffer_events: PositiveInt = 4096
    resume_buffer_bytes: PositiveInt = 4 * 1024 * 1024
