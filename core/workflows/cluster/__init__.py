"""Indexing on a Ray cluster: the same project, the same results as one machine, spread over many.

* :mod:`.session` connects (``--cluster local|auto|ray://ADDRESS``) and says how to install Ray when it is missing;
* :mod:`.shards` names the shards of a run and reads and writes their files;
* :mod:`.extraction` is feature extraction as a Ray Data pipeline (decode in tasks, encode in an actor pool);
* :mod:`.blocks` runs a model over blocks of rows as Ray tasks and draws the seeded fit sample;
* :mod:`.scoring` spreads the kNN detectors' queries over the cluster and fits the other detectors on a sample;
* :mod:`.mapping` fits UMAP on a sample and places the other items in parallel blocks.

Ray is an optional extra (``pip install 'oddscope[cluster]'``): only this package imports it.
"""
