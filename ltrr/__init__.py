"""ltrr's top layer: the command line (`ltrr.cli`), the learning-to-retrieve benchmark
(`ltrr.bench`), simulated users (`ltrr.clicks`, `ltrr.simulate`), offline evaluation
(`ltrr.evaluate`) and fault injection (`ltrr.faults`). Nothing below imports it.

Importing it changes nothing in the environment: entry points call `core.env.configure()`.
"""
