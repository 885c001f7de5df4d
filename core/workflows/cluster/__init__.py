"""Indexing on a Ray cluster: the same project, the same results as one machine, spread over many.

* :mod:`.session` connects (``--cluster local|auto|ray://ADDRESS``) and says how to install Ray when it is missing;
* :mod:`.shards` names the shards of a run and reads and writes their files;
* :mod:`.extraction` is feature extraction as a Ray Data pipeline (decode in tasks, encode in an actor pool);
* :mod:`.scoring` spreads the kNN detectors' queries over the cluster.

Ray is an optional extra (``pip install 'oddscope[cluster]'``): only this package imports it.
"""
