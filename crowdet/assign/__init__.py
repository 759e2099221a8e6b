"""Assigners: which person, if any, each prior learns from.

Each assigner is a class whose constructor takes its hyperparameters and whose call keeps the
contract of crowdet.structures.Assigner (Priors, Targets and, for assigners that ask for them, the
detached Predictions in; an AssignResult with the codes of crowdet.assign.codes out). What they
share is in crowdet.assign.common; crowdet.models.build.ASSIGNERS names them.
"""
