"""MONAI Label app: the gemix-monai bundle's classifier (infer + train) and its soft-label generator.

Start with ``monailabel start_server --app <this folder> --studies <images> --conf bundle <bundle folder>``
(details: :mod:`gemix_monai.monailabel.app`). MONAI Label loads the ``MONAILabelApp`` subclass defined here.
"""

from gemix_monai.monailabel.app import make_app_class

MyApp = make_app_class()
