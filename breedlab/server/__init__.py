"""The OpenAI-compatible server: every request routed through the living ecosystem.

``app.create_app(home, config)`` builds the FastAPI app (no module-level state);
``state.ServerState`` holds everything one app instance serves with.
"""
