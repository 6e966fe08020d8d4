import { describe, expect, it } from 'vitest';
import { formEncode } from '../../../src/delivery/form.ts';

describe('formEncode', () => {
  it.each([
    ['flat fields in object order', { b: 'x', a: 1 }, 'b=x&a=1'],
    ['nested objects in brackets', { a: { b: 1, c: { d: 'e' } } }, 'a%5Bb%5D=1&a%5Bc%5D%5Bd%5D=e'],
    ['arrays by index', { a: ['x', 'y'] }, 'a%5B0%5D=x&a%5B1%5D=y'],
    ['arrays of objects', { items: [{ id: 1 }, { id: 2 }] }, 'items%5B0%5D%5Bid%5D=1&items%5B1%5D%5Bid%5D=2'],
    ['nested arrays', { m: [[1, 2], [3]] }, 'm%5B0%5D%5B0%5D=1&m%5B0%5D%5B1%5D=2&m%5B1%5D%5B0%5D=3'],
    ['null as an empty value', { a: null, b: 'x' }, 'a=&b=x'],
    ['booleans and numbers as text', { t: true, f: false, n: -1.5, z: 0, big: 1e21 }, 't=true&f=false&n=-1.5&z=0&big=1e%2B21'],
    ['empty string', { a: '' }, 'a='],
    ['empty object and array keep their key', { o: {}, l: [] }, 'o=&l='],
    ['space as +', { q: 'a b' }, 'q=a+b'],
    ['reserved characters', { 'k&=?': 'v&=?#+/%' }, 'k%26%3D%3F=v%26%3D%3F%23%2B%2F%25'],
    ['unreserved characters as is', { s: "*-._~!'()" }, 's=*-._%7E%21%27%28%29'],
    ['unicode as UTF-8', { name: 'Zoë ☃ 😀' }, 'name=Zo%C3%AB+%E2%98%83+%F0%9F%98%80'],
    ['line breaks kept', { note: 'a\r\nb' }, 'note=a%0D%0Ab'],
    ['brackets inside a key are not structure', { 'a[b]': 1 }, 'a%5Bb%5D=1'],
    ['integer-like keys first, as JavaScript orders them', { b: 1, 2: 'two', a: 3 }, '2=two&b=1&a=3'],
    ['empty object', {}, ''],
    ['top-level string under data', 'hello world', 'data=hello+world'],
    ['top-level number under data', 42, 'data=42'],
    ['top-level null under data', null, 'data='],
    ['top-level array under data', ['x', { y: 1 }], 'data%5B0%5D=x&data%5B1%5D%5By%5D=1'],
  ])('%s', (_name, data, expected) => {
    expect(formEncode(data)).toBe(expected);
  });

  it('decodes back to the same fields with URLSearchParams', () => {
    const params = new URLSearchParams(formEncode({ user: { name: 'Zoë', tags: ['a b', 'c&d'] }, ok: true }));
    expect([...params]).toEqual([
      ['user[name]', 'Zoë'],
      ['user[tags][0]', 'a b'],
      ['user[tags][1]', 'c&d'],
      ['ok', 'true'],
    ]);
  });

  it('gives the same bytes for the same stored JSON every time', () => {
    const stored = '{"z":{"b":[1,{"c":null}],"a":"x"},"y":"é"}';
    expect(formEncode(JSON.parse(stored))).toBe('z%5Bb%5D%5B0%5D=1&z%5Bb%5D%5B1%5D%5Bc%5D=&z%5Ba%5D=x&y=%C3%A9');
  });
});
