# Copyright (c) mmext contributors. All rights reserved.
from .alignment import (cknna, cknna_from_knn, knn, linear_cka, mutual_knn,
                        mutual_knn_from_knn, procrustes_distance, rbf_cka,
                        svcca)

__all__ = [
    'knn', 'mutual_knn', 'mutual_knn_from_knn', 'cknna', 'cknna_from_knn',
    'linear_cka', 'rbf_cka', 'svcca', 'procrustes_distance'
]
