"""`timetag estimate` (not built yet: see the open issue)."""


def register(app):
    pass
