"""The Raspberry Pi AI Camera (Sony IMX500): the sensor's measured limits (:mod:`.limits`), Sony's
toolchain in its own environment (``requirements.txt``, :mod:`.toolchain`) and the script that runs
there (``convert.py``)."""
