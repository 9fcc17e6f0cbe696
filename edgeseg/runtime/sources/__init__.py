"""Where frames come from: cameras as the boards have them, live streams read by a thread that
keeps the newest frame, video files and image folders, all yielding :class:`~.frame.Frame`; and
which board this is. Imports nothing of the model."""
