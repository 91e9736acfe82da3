"""gemix_monai.data"""
