"""The chat service: the project's flagship example (docs/guides/chat.md).

- `protocol`: the line protocol's parser (`parse`) and its `ERR` lines;
- `room`: one GenServer per room, named `("via", "chat_rooms", room)`, started on demand;
- `connection`: one GenServer per client connection, and its socket's `ChatProtocol`;
- `listener`: the process that owns the listening socket;
- `app`: the supervision tree and the `otp.Application`; `rel`: the `otp.Release`;
- `release`: stages and builds releases 1.0.0 and 2.0.0 (`releases/1.0.0/` holds the
  modules that differ in 1.0.0);
- `loadgen`: the load generator; `demo`: `make demo`.

The service's modules (the first six) are what a release holds: they import each other
relatively, as the package `chat` of a staged project.
"""
