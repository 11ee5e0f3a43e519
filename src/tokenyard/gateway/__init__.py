"""The HTTP front of tokenyard: app assembly, the stage chain, the streaming relay, OpenAI errors, admin routes.

Build an app with ``tokenyard.gateway.app.build_app(config)``; run it with ``tokenyard serve``.
"""
