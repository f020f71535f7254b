// SVG pieces of the chart: text made safe in XML, coordinates, and the markers.

/** The marker shapes that tell series apart without colour. */
export type Shape = 'circle' | 'square' | 'triangleUp' | 'triangleDown' | 'cross' | 'diamond';

/** Text and attribute values safe in XML. */
export function xml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => {
    switch (char) {
      case '&':
        return '&amp;';
      case '<':
        return '&lt;';
      case '>':
        return '&gt;';
      case '"':
        return '&quot;';
      default:
        return '&#39;';
    }
  });
}

/** A pixel coordinate to a tenth, as SVG text. */
export const coordinate = (value: number) => String(Math.round(value * 10) / 10);

/** A marker of `shape` centred on (x, y); `attributes` go on its element. */
export function marker(shape: Shape, x: number, y: number, color: string, attributes = ''): string {
  const cx = coordinate(x);
  const cy = coordinate(y);
  const at = (dx: number, dy: number) => `${coordinate(x + dx)},${coordinate(y + dy)}`;
  const fill = `fill="${color}" stroke="#ffffff" stroke-width="1"`;
  switch (shape) {
    case 'circle':
      return `<circle${attributes} cx="${cx}" cy="${cy}" r="4.5" ${fill}/>`;
    case 'square':
      return `<rect${attributes} x="${coordinate(x - 4)}" y="${coordinate(y - 4)}" width="8" height="8" ${fill}/>`;
    case 'triangleUp':
      return `<polygon${attributes} points="${at(0, -7)} ${at(6.5, 5)} ${at(-6.5, 5)}" ${fill}/>`;
    case 'triangleDown':
      return `<polygon${attributes} points="${at(0, 7)} ${at(6.5, -5)} ${at(-6.5, -5)}" ${fill}/>`;
    case 'diamond':
      return `<polygon${attributes} points="${at(0, -7)} ${at(6, 0)} ${at(0, 7)} ${at(-6, 0)}" ${fill}/>`;
    case 'cross':
      return (
        `<path${attributes} d="M${at(-5, -5)} L${at(5, 5)} M${at(-5, 5)} L${at(5, -5)}" ` +
        `stroke="${color}" stroke-width="2.5" fill="none"/>`
      );
  }
}
