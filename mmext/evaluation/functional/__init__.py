# Copyright (c) mmext contributors. All rights reserved.
from .alignment import (canonical_correlations, cknna, cknna_from_knn, knn,
                        linear_cka, linear_hsic, mutual_knn,
                        mutual_knn_from_knn, procrustes_distance, rbf_cka,
                        svcca, svcca_basis, svcca_from_bases)

__all__ = [
    'knn', 'mutual_knn', 'mutual_knn_from_knn', 'cknna', 'cknna_from_knn',
    'linear_cka', 'linear_hsic', 'rbf_cka', 'svcca', 'svcca_basis',
    'svcca_from_bases', 'canonical_correlations', 'procrustes_distance'
]
