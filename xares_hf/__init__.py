"""xares-hf: the X-ARES audio-encoder benchmark on the Hugging Face stack.

    import xares_hf
    results = xares_hf.evaluate("org/my-encoder")   # Hub id, local folder, encoder .py file or nn.Module
    print(results)
"""

from .api import check_encoder, evaluate, list_tasks
from .encoders import EncoderContractError, load_encoder
from .metric_modules import register_metrics
from .results import Results, TaskResult
from .tasks import TaskCard, TaskCardError, load_task
from .version import __version__

__all__ = [
    "EncoderContractError",
    "Results",
    "TaskCard",
    "TaskCardError",
    "TaskResult",
    "__version__",
    "check_encoder",
    "evaluate",
    "list_tasks",
    "load_encoder",
    "load_task",
    "register_metrics",
]
