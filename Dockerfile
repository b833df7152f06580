# The chat service (apps/chat) as a container: docs/guides/deployment.md.
#
#   docker build -t chat:2.0.0 .                          # release 2.0.0 (the newest)
#   docker build --build-arg CHAT_VSN=1.0.0 -t chat:1.0.0 .
#   docker run --rm -p 5555:5555 -p 9100:9100 chat:2.0.0
#
# Stage 1 builds the framework's wheel and the chat release; stage 2 is a slim runtime
# with the installed wheel and the release, running `otp run --release` as a non-root user.
ARG PYTHON=3.11

FROM python:${PYTHON}-slim AS build
WORKDIR /src
RUN pip install --no-cache-dir build
COPY pyproject.toml README.md ./
COPY otp ./otp
COPY behaviours ./behaviours
RUN python -m build --wheel --outdir /dist
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir "$(echo /dist/*.whl)[ops]"
COPY apps ./apps
ARG CHAT_VSN=2.0.0
# Stage the chat project at CHAT_VSN and build its release (the first built is the one
# the node boots): /srv/chat/chat/ (the code) and /srv/chat/_build/releases/CHAT_VSN/.
RUN /opt/venv/bin/python -m apps.chat.release /srv/chat "${CHAT_VSN}"

FROM python:${PYTHON}-slim
RUN groupadd --system --gid 10001 chat \
    && useradd --system --uid 10001 --gid chat --home-dir /srv/chat --shell /usr/sbin/nologin chat
COPY --from=build /opt/venv /opt/venv
COPY --from=build --chown=chat:chat /srv/chat /srv/chat
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER chat
WORKDIR /srv/chat
EXPOSE 5555 9100
# SIGTERM stops the node cleanly (otp stop does the same from the preStop hook)
STOPSIGNAL SIGTERM
CMD ["otp", "run", "--release", "--name", "chat", \
     "--ops-port", "9100", "--ops-host", "0.0.0.0", \
     "--set", "chat.host=0.0.0.0", "--set", "chat.port=5555"]
