"""The use cases: plan, install, build, matrix, smoke. Each takes what the command line asked for, runs the
Plan through a backend (plan/ decides, backends/ act) and returns a frozen result (ops/result.py) that the
CLI renders as text or JSON. Nothing here prints: progress goes to the callback the caller passes in.
"""
