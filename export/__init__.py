"""edgeopt.export"""
