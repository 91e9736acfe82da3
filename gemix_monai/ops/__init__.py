"""gemix_monai.ops"""
