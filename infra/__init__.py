"""Deployment: CloudFormation generated from the one table description.

``template`` builds the merge template for ``chalice package`` and the tables-only
template for the ``chalice deploy`` flow; ``package`` runs ``chalice package`` and
checks the zip; ``deploy`` scripts the ``chalice deploy`` flow. See docs/deploy.md.
"""
