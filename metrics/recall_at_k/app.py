import evaluate
from evaluate.utils import launch_gradio_widget

module = evaluate.load("xares/recall_at_k")
launch_gradio_widget(module)
