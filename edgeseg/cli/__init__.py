"""The `edgeseg` command line. Heavy imports (TensorFlow) happen inside command bodies."""
