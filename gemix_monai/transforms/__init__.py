"""gemix_monai.transforms"""
