"""crowdet: detecting people in crowded scenes."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # `crowdet.Detector` without importing torch at `import crowdet`
    if name == "Detector":
        from crowdet.api import Detector

        return Detector
    raise AttributeError(f"module 'crowdet' has no attribute {name!r}")
