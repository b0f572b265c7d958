import evaluate
from evaluate.utils import launch_gradio_widget

module = evaluate.load("xares/segment_f1")
launch_gradio_widget(module)
