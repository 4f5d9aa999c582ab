"""(placeholder: filled by the notebook work of issue 5)."""
__all__: list = []
