"""Names of the annotation formats (kept import-free so the command line starts fast)."""

READ_FORMATS = ("odgt", "coco", "ecp", "citypersons", "widerperson")
WRITE_FORMATS = ("odgt", "coco")
