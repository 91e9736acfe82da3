"""gemix_monai.mixing"""
