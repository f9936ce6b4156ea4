"""The feedback API: surveys, their responses and the configuration around them."""
