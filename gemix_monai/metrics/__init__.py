"""gemix_monai.metrics"""
