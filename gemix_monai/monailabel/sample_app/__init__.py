"""A MONAI Label app folder (``monailabel start_server --app <this folder>``); see :mod:`gemix_monai.monailabel.app`."""
