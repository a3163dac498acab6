// Ids are base64url ("UHJvcGVydHk6MTg4NQ=="): `=` is a valid path character, kept as is so the
// URLs read cleanly; anything else unusual is escaped.
const segment = (id: string): string => encodeURIComponent(id).replace(/%3D/g, "=");

export const propertyPath = (id: string): string => `/property/${segment(id)}`;
export const localityPath = (id: string): string => `/locality/${segment(id)}`;
