import evaluate
from evaluate.utils import launch_gradio_widget

module = evaluate.load("xares/mean_average_precision")
launch_gradio_widget(module)
