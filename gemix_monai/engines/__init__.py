"""gemix_monai.engines"""
