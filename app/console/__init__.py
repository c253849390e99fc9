"""Browser assets of the planner's console (served by :mod:`app.api.routers.console`)."""
