"""The engine: the grid of cells, the run request, the runner and its executors."""
