import evaluate
from evaluate.utils import launch_gradio_widget

module = evaluate.load("xares/accuracy")
launch_gradio_widget(module)
