"""behaviours: GenServer, Supervisor, DynamicSupervisor and GenStatem, built on `otp`."""

__all__: list[str] = []
