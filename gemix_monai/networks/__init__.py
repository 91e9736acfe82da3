"""gemix_monai.networks"""
