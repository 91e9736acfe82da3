"""gemix_monai.handlers"""
