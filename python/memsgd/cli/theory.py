"""`memsgd stability` and `memsgd phase` (theory toolkit)."""


def register(sub):
    pass
