"""`memsgd reproduce fig1|fig4|compare|digits`."""


def register(sub):
    pass
