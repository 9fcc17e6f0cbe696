"""The device runtime: numpy + OpenCV + the LiteRT interpreter, never TensorFlow.

Nothing under ``edgeseg.runtime`` may import TensorFlow, directly or through another edgeseg
module (a test imports it in a fresh process and checks ``sys.modules``).
"""
