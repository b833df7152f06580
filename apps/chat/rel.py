"""The chat release: `otp release build chat.rel:release` in a staged project
(`python -m apps.chat.release stage`)."""

from __future__ import annotations

import otp

from .app import app

release = otp.Release("chat", app.vsn, applications=[app])
