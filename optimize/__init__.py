"""edgeopt.optimize"""
