"""Domain corpora: fetch offline sources, clean, dedup, split, shard and register datasets.

Entry points: :func:`breedlab.data.build.build_corpora` (the library side of
``breedlab data build``) and :func:`breedlab.data.read.iter_documents` (read a
registered split back). Domains and their sources are configuration:
``breedlab/configs/domains.yaml``; source types are plug-ins in
:mod:`breedlab.data.sources`.
"""
