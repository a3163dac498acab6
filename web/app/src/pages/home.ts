import { gql } from "../api";
import { combobox, type Suggestion } from "../components/combobox";
import { h } from "../dom";
import { formatPrice, localityName } from "../format";
import { localityPath, propertyPath } from "../paths";
import { navigate, setTitle, type PageContext } from "../router";

// One request per pause in typing: addresses and suburbs together.
const SUGGEST = `query Suggest($query: String!) {
  searchAddresses(query: $query, first: 8) {
    score
    property { id address lastSalePrice locality { name postcode } }
  }
  suggestLocalities(query: $query, first: 3) {
    score
    locality { id name postcode }
  }
}`;

interface SuggestAnswer {
  searchAddresses: {
    score: number;
    property: {
      id: string;
      address: string;
      lastSalePrice: number;
      locality: { name: string; postcode: string };
    };
  }[];
  suggestLocalities: { score: number; locality: { id: string; name: string; postcode: string } }[];
}

export async function suggest(query: string, signal: AbortSignal): Promise<Suggestion[]> {
  const data = await gql<SuggestAnswer>(SUGGEST, { query }, { signal });
  const addresses: Suggestion[] = data.searchAddresses.map(({ property }) => ({
    id: property.id,
    kind: "Address",
    label: property.address,
    detail: `last sold ${formatPrice(property.lastSalePrice)}`,
    href: propertyPath(property.id),
  }));
  const suburbs: Suggestion[] = data.suggestLocalities.map(({ locality }) => ({
    id: locality.id,
    kind: "Suburb",
    label: localityName(locality),
    detail: "suburb statistics",
    href: localityPath(locality.id),
  }));
  return [...addresses, ...suburbs];
}

export function searchBox(): HTMLElement {
  return combobox({
    label: "Search address",
    placeholder: "e.g. 12 Smith St Tempe",
    fetch: suggest,
    pick: (suggestion) => navigate(suggestion.href),
  });
}

export function homePage({ main }: PageContext): void {
  setTitle("");
  main.append(
    h(
      "section",
      { class: "hero" },
      h("h1", {}, "What is it worth?"),
      h(
        "p",
        { class: "lede" },
        "Type an address in New South Wales to see every recorded sale, a price estimate and its suburb's market.",
      ),
      searchBox(),
    ),
  );
}
