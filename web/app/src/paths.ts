export const propertyPath = (id: string): string => `/property/${encodeURIComponent(id)}`;
export const localityPath = (id: string): string => `/locality/${encodeURIComponent(id)}`;
