"""An executor for the sweep tests that counts what its tasks computed (to prove a resumed
sweep recomputes nothing)."""
import threading
from concurrent.futures import ThreadPoolExecutor


class CountingExecutor(ThreadPoolExecutor):
    """A thread pool that counts the configurations its tasks computed."""

    def __init__(self, workers=2):
        super().__init__(workers)
        self.configurations = 0
        self._lock = threading.Lock()

    def submit(self, fn, *args, **kwargs):
        def counted(*a, **k):
            out = fn(*a, **k)  # (loss, diverged_at[, loss_error]) of the task's configurations
            with self._lock:
                self.configurations += len(out[1])
            return out
        return super().submit(counted, *args, **kwargs)
