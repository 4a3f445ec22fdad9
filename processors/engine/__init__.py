"""The consume-transform-produce engine shared by every processor."""
