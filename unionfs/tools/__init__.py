"""What users run: the command line, the demo, the ``overlay://`` opener, the pytest plugin."""
