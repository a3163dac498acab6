"""GraphQL documents of the small database (`databases.load_small`: TEMPE, 2023 and 2024),
shared by the cache, fault and degradation tests."""

from __future__ import annotations

PROPERTY = """query($id: ID!) { property(id: $id) { id lastSalePrice lastSaleDate
    lastSale { price contractDate dealingNumber } sales(first: 3) { nodes { price dealingNumber } } } }"""
STATS = """{ locality(name: "TEMPE", postcode: "2044") { id stats { salesCount medianPrice }
    properties(first: 5, orderBy: LAST_SALE_DATE_DESC) { nodes { id lastSaleDate } } } }"""
PRICE_LIST = """{ properties(first: 3, orderBy: LAST_SALE_PRICE_DESC, filter: {postcode: "2044"}) {
    nodes { id lastSalePrice } } }"""
