import evaluate
from evaluate.utils import launch_gradio_widget

module = evaluate.load("xares/xares_score")
launch_gradio_widget(module)
