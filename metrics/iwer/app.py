import evaluate
from evaluate.utils import launch_gradio_widget

module = evaluate.load("xares/iwer")
launch_gradio_widget(module)
